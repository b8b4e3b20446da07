"""Classification metrics of one test run: accuracy, precision, recall, F1, specificity, AUROC."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support, roc_auc_score

METRICS = ("accuracy", "precision", "recall", "f1", "specificity", "auroc", "macro_f1")


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, positive: int = 1) -> dict[str, float]:
    """Metrics of argmax predictions; binary ones treat class ``positive`` (AF) as positive.

    With more than two classes, precision/recall/F1 are for ``positive`` against the rest,
    ``macro_f1`` averages over classes and AUROC is one-vs-rest macro.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    pred = proba.argmax(axis=1)
    n_classes = proba.shape[1]
    pos_true, pos_pred = y_true == positive, pred == positive
    tn = int(np.sum(~pos_true & ~pos_pred))
    fp = int(np.sum(~pos_true & pos_pred))
    prec, rec, f1, _ = precision_recall_fscore_support(
        pos_true, pos_pred, average="binary", pos_label=True, zero_division=0)
    out = {
        "accuracy": float(np.mean(pred == y_true)),
        "precision": float(prec),
        "recall": float(rec),
        "f1": float(f1),
        "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
        "macro_f1": float(f1_score(y_true, pred, average="macro", labels=np.arange(n_classes), zero_division=0)),
    }
    present = np.unique(y_true)
    if len(present) < 2:
        out["auroc"] = float("nan")
    elif n_classes == 2:
        out["auroc"] = float(roc_auc_score(y_true, proba[:, positive]))
    else:
        try:
            out["auroc"] = float(roc_auc_score(y_true, proba, multi_class="ovr", labels=np.arange(n_classes)))
        except ValueError:  # a class absent from this test set
            out["auroc"] = float("nan")
    return out
