"""callwarden: acceptable-use-policy enforcement for hosted contact centers."""

__version__ = "0.1.0"
