"""The paper's own source images: its three single images (N = 1) and the ten ImageNet train
images it chose for N = 10, both as yukimasano/single_img_pretraining (SIP) gives them.

The three are in SIP's images/ "for convenience and without copyright/licence"
(images/README.md): they are never bundled. A user copies them into a folder of their own
(PAPER_IMAGES_ENV, or the cache folder `paper_images_dir` names), and each is pinned by the
SHA-256 of upstream's blob. The pin is the image's content, so its keys are known without the
file (validate and plan work anywhere); a job that reads it needs the file, with those bytes
(`paper_image_problem`, checked before any compute).

No torch: the driver resolves and checks them while planning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from contract.images import resolve_photo, sha256_file

# SIP at the commit docs/FIDELITY.md reads; the images' blobs are unchanged since `8562840`.
SIP_COMMIT = "04b07233154c614c6ae53535fe80de81e904ca8f"
SIP_IMAGES = f"https://github.com/yukimasano/single_img_pretraining/blob/{SIP_COMMIT}/images"
PAPER_IMAGES_ENV = "MONOSWEEP_PAPER_IMAGES"


@dataclass(frozen=True)
class PaperImage:
    """One of upstream's images: its file name in SIP's images/ and the SHA-256 of its bytes
    (`git cat-file blob <commit>:images/<file> | sha256sum`)."""

    file: str
    sha256: str

    @property
    def upstream(self) -> str:
        return f"{SIP_IMAGES}/{self.file}"


# Named by file: SIP does not say which one the paper calls image A, B or C. ameyoko.jpg is
# make_dataset_single.py's default --imgpath (l.199).
PAPER_IMAGES: dict[str, PaperImage] = {
    "ameyoko": PaperImage("ameyoko.jpg", "78c2681de2dbfb416fb861ca3ae0a5e21f3f53c56dfc18b276b0feab4ec526aa"),
    "sf": PaperImage("sf.png", "a17d42cda71851ff48b6abf24f7eaf28eb021e05094805443de073c11696b7f6"),
    "animals": PaperImage("animals.png", "8d53d41034236f3b7248134e1b9b48060ee0f6eed1eb779a1f0522e0bf05f533"),
}

# SIP make_dataset_single.py l.239-246, the commented `chosen = [...]` block under "10 imagenet
# images": ImageNet train images, as paths below the train split's folder.
CHOSEN: dict[str, tuple[str, ...]] = {
    "asano2020": (
        "n04443257/n04443257_36457.JPEG",
        "n02129604/n02129604_19761.JPEG",
        "n03733281/n03733281_41945.JPEG",
        "n02727426/n02727426_50177.JPEG",
        "n07753592/n07753592_3046.JPEG",
        "n03485794/n03485794_27904.JPEG",
        "n03220513/n03220513_16200.JPEG",
        "n04487394/n04487394_23489.JPEG",
        "n07614500/n07614500_271.JPEG",
        "n02105412/n02105412_3932.JPEG",
    ),
}
CHOSEN_DATASET = "imagenet"  # the split every list of CHOSEN names images of


def paper_images_dir() -> Path:
    """Where the paper's images are looked for: $MONOSWEEP_PAPER_IMAGES, else
    $XDG_CACHE_HOME/monosweep/paper_images (~/.cache/monosweep/paper_images)."""
    if folder := os.environ.get(PAPER_IMAGES_ENV):
        return Path(folder).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "monosweep" / "paper_images"


def paper_image_path(name: str) -> Path:
    return paper_images_dir() / PAPER_IMAGES[name].file


def resolve_source(ref: str, base_dir: Path) -> Path:
    """A source photo: a bundled name, one of the paper's images (where it is looked for,
    there or not: see `paper_image_problem`), or an image file (relative to `base_dir`).

    Raises:
        ValueError: none of these.
    """
    if ref in PAPER_IMAGES:
        return paper_image_path(ref)
    try:
        return resolve_photo(ref, base_dir)
    except ValueError as e:
        raise ValueError(f"{e}; nor one of the paper images ({', '.join(PAPER_IMAGES)})") from None


def pinned_sha256(ref: str) -> str | None:
    """The pinned content hash of a source photo named `ref`: upstream's, for a paper image."""
    image = PAPER_IMAGES.get(ref)
    return image.sha256 if image else None


def paper_image_problem(name: str) -> str | None:
    """Why the paper image `name` cannot be read by a job here (missing, or other bytes than
    upstream's), saying where upstream keeps it and where to put it; None when it is there.
    No apostrophes: a located error elides long quoted spans."""
    image, path = PAPER_IMAGES[name], paper_image_path(name)
    if not path.is_file():
        return (f"the paper image {image.file} is not at {path}; upstream keeps it at {image.upstream} "
                f"(not bundled: it has no licence): download it to {path}, or set {PAPER_IMAGES_ENV} "
                f"to a folder that holds it")
    digest = sha256_file(path)
    if digest != image.sha256:
        return (f"{path} holds other bytes than the {image.file} upstream keeps (sha256 {digest[:16]}..., "
                f"not {image.sha256[:16]}...): replace it with the file at {image.upstream}")
    return None
