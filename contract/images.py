"""Source images: the bundled open-licence photographs, image files and folders (pools).

No torch (PIL and the standard library): the driver resolves, checks and hashes image sets
while planning.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from PIL import Image, UnidentifiedImageError

PHOTOS_DIR = Path(__file__).parent / "photos"
STYLES_DIR = Path(__file__).parent / "styles"  # style images of the style-transfer evaluation
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# What the workers' decoder (torchvision's decode_image) reads; it refuses BMP and TIFF.
# MPO: a JPEG with a multi-picture header (many cameras and phones), which Pillow names apart.
DECODED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF")
MIN_SIDE = 32  # px: below this on either side, an image is too small to crop anything from


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


def image_problem(path: Path, crop_size: int, source: bool = True) -> str | None:
    """Why the file at `path` cannot be a source image for crops resized to `crop_size` px, or
    None. The file is opened and fully decoded, so a truncated file fails here, not on a worker.
    `source=False` (style transfer's contents and styles): a grey image is fine, and any size."""
    try:
        image = Image.open(path)
    except UnidentifiedImageError:
        return "not an image (no image format recognised); give a JPEG, PNG, WebP or GIF file"
    except Image.DecompressionBombError as e:  # not an OSError
        return f"too large to decode safely ({e}); give a smaller copy"
    except OSError as e:
        return f"cannot read the file: {e.strerror or e}"
    with image:
        if image.format not in DECODED_FORMATS:  # before decoding all of it for nothing
            return f"a {image.format} file, which the workers cannot decode; convert it to JPEG or PNG"
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as e:  # PIL's ways of saying the data is broken
            return f"corrupt {image.format} file: decoding fails ({e}); use an intact copy"
        (width, height), mode = image.size, image.mode
    if min(width, height) < MIN_SIDE:
        return f"{width}x{height} px is too small: both sides must be at least {MIN_SIDE} px"
    # Grey modes (1, L, LA, I, F, I;16) have an L base: jitter's saturation and hue need colour.
    if not source:
        return None
    if Image.getmodebase(mode) == "L":
        return (f"a grayscale image (PIL mode {mode}); the mono dataset's colour jitter needs "
                "colour: convert it to RGB")
    if min(width, height) < crop_size:
        return (f"{width}x{height} px is smaller than the crop: its short side must be at least "
                f"network.input_size = {crop_size} px, the size every crop is resized to "
                "(it would be upsampled)")
    return None
