"""Static files: compressed and hashed once `collectstatic` has run, the apps' own files before it."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage  # type: ignore[import-untyped]


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """WhiteNoise's compressed manifest storage, with plain names while there is no manifest.

    A fresh checkout's `runserver` then renders its pages without `collectstatic`
    (the manifest storage would raise on every `{% static %}`), and WhiteNoise
    serves those names from the apps (WHITENOISE_USE_FINDERS, on while the
    manifest is missing). After `collectstatic`, names are hashed and strict.
    """

    def stored_name(self, name: str) -> str:
        if not self.hashed_files:  # no manifest was loaded: collectstatic has not run
            return name
        return super().stored_name(name)
