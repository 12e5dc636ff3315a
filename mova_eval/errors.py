"""Typed errors. Every error names the thing at fault and, where one exists, the command that fixes it."""
from __future__ import annotations

from pathlib import Path


class MovaEvalError(Exception):
    """Base class of every error mova-eval raises on purpose."""


class ConfigError(MovaEvalError):
    """A configuration value is missing or inconsistent; raised before any model loads."""


class PluginError(ConfigError):
    """A plug-in path (``package.module:ClassName``, from the config's ``plugins`` or an entry point) cannot be
    used: it does not import, names nothing, or names something that is not a concrete Metric/Generator."""

    def __init__(self, origin: str, path: object, problem: str):
        self.origin, self.path, self.problem = origin, path, problem
        super().__init__(f"{origin}: {path!r} {problem}")


class RegistryKeyError(MovaEvalError, KeyError):
    """An unknown generator, metric, suite or weights name, with did-you-mean suggestions."""

    def __init__(self, kind: str, name: str, known: list[str]):
        import difflib

        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Known: {', '.join(sorted(known)) or '(none)'}")
        self.kind, self.name = kind, name

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class MissingDependencyError(MovaEvalError, ImportError):
    """An optional dependency is not installed; the message carries the pip command."""

    def __init__(self, what: str, package: str, extra: str | None = None, command: str | None = None):
        self.package, self.extra = package, extra
        self.command = command or (f"pip install 'mova-eval[{extra}]'" if extra else f"pip install {package}")
        super().__init__(f"{what} needs the package {package!r}, which is not installed. Install it with: {self.command}")


class WeightsMissingError(MovaEvalError):
    """A checkpoint is not on disk; nothing is downloaded implicitly, so the message gives the fetch command."""

    def __init__(self, name: str, searched: list[Path]):
        self.name = name
        self.command = f"mova-eval weights fetch {name}"
        where = ", ".join(str(p) for p in searched) or "(nowhere)"
        super().__init__(
            f"weights {name!r} are not available (looked in: {where}). "
            f"Fetch them with: {self.command}   (or put the file in $MOVA_EVAL_WEIGHTS)"
        )


class WeightsChecksumError(MovaEvalError):
    """A checkpoint on disk does not match its pinned sha256."""


class SuiteError(MovaEvalError):
    """A suite file is malformed; names the file, the item and the field."""

    def __init__(self, source: str | Path, problem: str, item: str | None = None, field: str | None = None):
        self.source, self.item, self.field = str(source), item, field
        where = str(source)
        if item is not None:
            where += f": item {item!r}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {problem}")


class ResultsError(MovaEvalError):
    """A run directory (run.json, items.parquet, the partial log) cannot be read; names the file."""

    def __init__(self, path: str | Path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


class MediaError(MovaEvalError):
    """A media file cannot be used; names the file and the problem. Subclasses say which kind of problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


class UnreadableMediaError(MediaError):
    """The container cannot be opened or is truncated/corrupt."""


class MissingStreamError(MediaError):
    """The file has no stream of the kind a metric needs (e.g. no audio track)."""

    def __init__(self, path: str | Path, kind: str):
        self.kind = kind
        super().__init__(path, f"has no {kind} stream")


class EmptyMediaError(MediaError):
    """A stream decodes to zero frames or zero samples."""


class InvalidAudioError(MediaError):
    """Decoded audio contains NaN or infinite samples."""


class MediaLimitError(MediaError):
    """Frame size, duration or sample count is outside what the harness accepts."""


class AudioTrackError(MediaError):
    """``media.audio_track=N`` names an audio track the file does not have."""


class NotApplicable(MovaEvalError):
    """A metric does not apply to this item (e.g. WER on an item with no speech); recorded, not an error."""


class MetricUnavailable(MovaEvalError):
    """A metric cannot run on this machine (missing extra or weights); carries the command that fixes it."""

    def __init__(self, metric: str, reason: str, command: str | None = None):
        self.metric, self.reason, self.command = metric, reason, command
        super().__init__(f"{metric} is unavailable: {reason}" + (f" (fix: {command})" if command else ""))


class GenerationError(MovaEvalError):
    """A generator could not produce a clip for one request; the run records it and goes on."""


class RunLockedError(MovaEvalError):
    """Another process is writing the same run directory (same ``output_dir`` and ``run_id``)."""

    def __init__(self, run_dir: str | Path, holder: str):
        self.run_dir, self.holder = str(run_dir), holder
        super().__init__(f"{run_dir} is being written by another run ({holder}); wait for it to finish, or choose "
                         f"another run_id")


class StorageError(MovaEvalError):
    """A file cannot be written: the folder is read-only, or the disk is full. Names the folder and, for a full
    disk, how many bytes were needed and how many are free."""

    def __init__(self, folder: str | Path, problem: str):
        self.folder, self.problem = str(folder), problem
        super().__init__(f"{folder}: {problem}")


def storage_error(path: str | Path, err: OSError, needed: int | None = None) -> StorageError:
    """The StorageError for an OSError raised while writing ``path`` (read-only folder, full disk, …)."""
    import errno
    import shutil

    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if err.errno == errno.ENOSPC or err.errno == errno.EDQUOT:
        try:
            free = f"{shutil.disk_usage(folder).free:,} bytes free"
        except OSError:
            free = "free space unknown"
        need = f"{needed:,} bytes needed" if needed is not None else "more space needed"
        return StorageError(folder, f"no space left on the device writing {Path(path).name} ({need}, {free}); "
                                    f"free some space or point output_dir / runtime.cache_dir elsewhere")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(folder, f"is not writable ({err.strerror}) writing {Path(path).name}; choose a "
                                    f"writable output_dir / runtime.cache_dir")
    return StorageError(folder, f"cannot write {Path(path).name}: {err.strerror or err}")
