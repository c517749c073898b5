"""`distill eval`: sample benchmark problems from one or more models and grade them."""
