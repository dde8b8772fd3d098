"""The version of edgenas: written into run configs, tables and exported files."""

__version__ = "0.1.0"
