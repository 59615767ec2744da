"""Image archives: `sandbox save` writes docker-archive or OCI layout tars, `sandbox load` reads both.

``save_images(refs, out, fmt="docker-archive" | "oci")`` and
``load_archive(stream, source, tag=None) -> [StoredImage]``. Archives are
untrusted on the way in (``members``, ``load``); `sandbox image import`
stays the way in for a plain rootfs tarball.
"""

from .load import load_archive
from .save import FORMATS, save_images

__all__ = ["FORMATS", "load_archive", "save_images"]
