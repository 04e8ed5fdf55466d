"""segue: protect face photos from unauthorised face-recognition training.

The library is importable without the CLI; each subcommand's logic lives in its own
module (training, protect, export, evaluation, clustering) with typed functions.
"""

__version__ = "0.1.0"
