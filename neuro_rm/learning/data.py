"""``LabelledSet`` lives with the data (``neuro_rm.data.labelled``); the learning code has always imported it from here."""

from neuro_rm.data.labelled import LabelledSet

__all__ = ["LabelledSet"]
