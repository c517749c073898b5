"""What a run's inputs are, by content: a file's sha256, and a model's identity (a local directory by its
files' digests, a Hub id by the commit it resolves to). Resuming compares them, and a checkpoint's
marker records its files' digests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def student_identity(model: str) -> str:
    """What a model is, for the resume check: a sha256 over the files of a local directory (contents,
    so an edit that keeps sizes and times is seen too), or a Hub id with the commit it resolves to."""
    path = Path(model).expanduser()
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")):
            digest.update(f"{file.name}\0{file_digest(file)}\n".encode())
        return "sha256:" + digest.hexdigest()
    from huggingface_hub import model_info, snapshot_download

    try:
        if not os.environ.get("HF_HUB_OFFLINE"):
            return f"{model}@{model_info(model).sha}"
    except Exception:  # no network: what the local cache holds is what from_pretrained will load
        pass
    try:
        return f"{model}@{Path(snapshot_download(model, local_files_only=True)).name}"
    except Exception:
        return model
