"""What a build asks of the image store, in one place.

A build state is the image a stage has reached: a StoredImage (every step
that adds a layer writes one, untagged, and keeps it in the build cache
under the step's key), ``"host"`` (FROM host, nothing added yet) or None
(FROM scratch, nothing added yet). Configs cross here between the plan's
ImageConfig and the store's OCI one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ... import images
from ...errors import BuildFileError, ImageError, ImageNotFound
from ..oci import ImageConfig as OciConfig
from ..stored import StoredImage, load
from .config import ImageConfig

State = Union[StoredImage, str, None]


def base_config(ref: str) -> ImageConfig:
    """The config an image starts a stage with (the plan's resolver)."""
    if ref == "host":
        return ImageConfig(env=tuple(images.host_image().env.items()))
    return to_plan_config(base_image(ref).config.config)


def base_image(ref: str) -> StoredImage:
    """A stored image a FROM names (busybox made on first use)."""
    try:
        if ref in ("busybox", "busybox:latest"):
            images.get("busybox")
        return images.lookup(ref)
    except ImageNotFound as exc:
        known = ", ".join(["scratch", "host", *images.names()])
        raise BuildFileError(f"image {ref!r} not found (known: {known}); make it with "
                             "`sandbox build`, `sandbox image import` or `sandbox image bootstrap`"
                             ) from exc


def base_state(ref: str) -> tuple[State, str]:
    """What FROM ``ref`` starts from, and what of it goes into the cache key (its id)."""
    if ref == "scratch":
        return None, "scratch"
    if ref == "host":
        return "host", "host"
    image = base_image(ref)
    return image, image.id


def cached(key: str) -> StoredImage | None:
    """The image a step with this key made before, if the cache and the store still have it."""
    desc = images.cache_get(key)
    if desc is None:
        return None
    try:
        image = load(desc)
        for layer in image.layers:
            if not layer_present(layer):
                return None
        return image
    except ImageError:
        return None


def layer_present(layer: images.Layer) -> bool:
    from ..layers import is_unpacked

    return is_unpacked(layer.diff_id)


def commit_step(state: State, layer: images.Layer | None, key: str,
                history: list[dict]) -> StoredImage:
    """Write the image a layer step made (untagged, with the base's config) and cache it.

    ``history``: the entries of the config steps since the last layer, then this step's.
    """
    config = state.config.config if isinstance(state, StoredImage) else OciConfig()
    image = images.write_image([layer] if layer else [], config, base=state, history=history)
    images.cache_put(key, image.descriptor)
    return image


def finish(state: State, config: ImageConfig, history: list[dict], tags: tuple[str, ...]) -> StoredImage:
    """The final image: the stage's layers, the plan's config, one history entry per config step."""
    image = images.write_image([], to_oci_config(config), base=state, history=history,
                               tag=tags[0] if tags else None)
    for tag in tags[1:]:
        images.tag_image(image.id, tag)
    return image


def sandbox_ref(state: State) -> str:
    """The image a RUN step's sandbox runs: the state's id, or host."""
    if isinstance(state, StoredImage):
        return state.id
    if state == "host":
        return "host"
    raise ValueError("RUN needs a filesystem with the command in it: FROM scratch holds "
                     "nothing until a COPY or ADD")


def to_plan_config(config: OciConfig) -> ImageConfig:
    return ImageConfig.from_oci(config.to_json())


def to_oci_config(config: ImageConfig) -> OciConfig:
    return OciConfig.from_json(config.to_oci())


@dataclass
class StageResult:
    """Where a stage ended: its image state and its last cache key."""

    state: State
    key: str
