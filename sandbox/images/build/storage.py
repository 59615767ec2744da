"""What a build asks of the image store, in one place.

A build state is the image a stage has reached: a StoredImage (every step
that adds a layer writes one, untagged, and keeps it in the build cache
under the step's key), ``"host"`` (FROM host, nothing added yet) or None
(FROM scratch, nothing added yet). Configs cross here between the plan's
ImageConfig and the store's OCI one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ... import images
from ...errors import BuildFileError, ImageError, ImageNotFound
from .. import refs
from ..oci import ImageConfig as OciConfig
from ..stored import StoredImage, load
from .config import ImageConfig

State = StoredImage | str | None


class Bases:
    """The images FROM and COPY --from name, each looked up once per build."""

    def __init__(self) -> None:
        self._found: dict[str, StoredImage] = {}

    def config(self, ref: str) -> ImageConfig:
        """The config an image starts a stage with (the plan's resolver)."""
        if ref == "host":
            return ImageConfig(env=tuple(images.host_image().env.items()))
        return to_plan_config(self.image(ref).config.config)

    def image(self, ref: str) -> StoredImage:
        """A stored image (busybox made on first use; one that names a registry is pulled
        first when it is not stored, once however many builds ask)."""
        if ref not in self._found:
            try:
                self._found[ref] = images.pull_if_missing(ref)
            except ImageNotFound as exc:
                known = ", ".join(["scratch", "host", *images.names()])
                raise BuildFileError(f"image {ref!r} not found (known: {known}); make it with "
                                     "`sandbox build`, `sandbox image import` or `sandbox image "
                                     "bootstrap`") from exc
        return self._found[ref]

    def state(self, ref: str) -> tuple[State, str]:
        """What FROM ``ref`` starts from, and what of it goes into the cache key (its id)."""
        if ref == "scratch":
            return None, "scratch"
        if ref == "host":
            return "host", "host"
        image = self.image(ref)
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


def finish(state: State, config: ImageConfig, history: list[dict], tags: tuple[str, ...],
           key: str, *, reuse: bool = True) -> StoredImage:
    """The final image (the stage's layers, the plan's config, the config steps' history),
    kept in the cache under ``key`` like a step: a rebuild with nothing changed gives the
    same image id and writes nothing but the tags that moved (``reuse=False``: a new one)."""
    image = cached(key) if reuse else None
    if image is None:
        image = images.write_image([], to_oci_config(config), base=state, history=history)
        images.cache_put(key, image.descriptor)
    tagged = refs.read_index()
    for tag in tags:
        ref = images.parse_reference(tag)
        if getattr(tagged.get(str(ref)), "digest", None) != image.id:
            refs.set_tag(ref, image.id, image.size)
    return replace(image, tags=tuple(str(images.parse_reference(t)) for t in tags))


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
