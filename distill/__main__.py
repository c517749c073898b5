"""`python -m distill …` runs the command line, as the `distill` script does."""

try:
    from distill_cli.main import main
except ImportError:  # a source checkout that was not installed: the cli/ folder itself
    from cli.main import main

if __name__ == "__main__":
    main()
