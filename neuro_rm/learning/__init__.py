"""Learning, unlearning and continual learning on hybrid models, shared by every task."""

from neuro_rm.learning.continual import learn_new_classes
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.loop import TrainConfig, optimize
from neuro_rm.learning.metrics import accuracy, equal_error_rate, mia_auc, per_class_accuracy, predict_logits
from neuro_rm.learning.train import FitResult, fit, fit_classifier
from neuro_rm.learning.unlearn import UnlearnConfig, unlearn

__all__ = [
    "FitResult",
    "LabelledSet",
    "TrainConfig",
    "UnlearnConfig",
    "accuracy",
    "equal_error_rate",
    "fit",
    "fit_classifier",
    "learn_new_classes",
    "mia_auc",
    "optimize",
    "per_class_accuracy",
    "predict_logits",
    "unlearn",
]
