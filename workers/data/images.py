"""Source images: the bundled open-licence photographs, image files and folders (pools).

Standard library only: the driver resolves and hashes image sets while planning, without torch.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

PHOTOS_DIR = Path(__file__).parent / "photos"
STYLES_DIR = Path(__file__).parent / "styles"  # style images of the style-transfer evaluation
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def bundled_photos(folder: Path = PHOTOS_DIR) -> dict[str, Path]:
    """Name -> path of the images shipped with the package (licences beside them)."""
    return {p.stem: p for p in sorted(folder.glob("*.jpg"))}


def resolve_photo(ref: str, base_dir: Path, folder: Path = PHOTOS_DIR) -> Path:
    """A bundled image's name (a photo, or a style image with `folder=STYLES_DIR`), or an
    image file path (relative to `base_dir`).

    Raises:
        ValueError: neither a bundled name nor an existing file.
    """
    photos = bundled_photos(folder)
    if ref in photos:
        return photos[ref]
    path = (base_dir / ref).expanduser()
    if path.is_file():
        return path.resolve()
    raise ValueError(
        f"{ref!r} is neither a bundled {folder.name.rstrip('s')} ({', '.join(photos)}) nor an image file "
        f"(no file at {path})"
    )


def pool_files(folder: Path) -> list[Path]:
    """The image files of a pool folder, recursively, in a fixed order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def draw(files: list[Path], n: int, seed: int) -> list[Path]:
    """N files drawn without replacement, reproducibly from `seed`."""
    return sorted(random.Random(seed).sample(files, n))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
