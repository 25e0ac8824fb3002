"""Domain exceptions. Library code raises these; only the CLI turns them into exit codes."""


class ScnError(Exception):
    """Base class for every error scn-deploy reports to a user."""


class ModelFileError(ScnError):
    """A model file is missing, corrupt, truncated or not an scn-deploy model."""


class ConfigError(ScnError):
    """An architecture or task configuration is invalid."""


class ImageReadError(ScnError):
    """An image file is missing, corrupt, truncated or unsupported."""


class DataError(ScnError):
    """A data folder is missing, empty or holds no usable images."""


class ImageTooLargeError(ImageReadError):
    """An image whose header declares more pixels than the caller's limit (not decoded)."""
