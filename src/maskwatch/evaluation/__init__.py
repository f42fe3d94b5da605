"""COCO metrics, PR curves and confusion matrices for predictions in the project's JSONL format."""

from maskwatch.evaluation.coco_metrics import CocoResult, evaluate_coco
from maskwatch.evaluation.report import write_report

__all__ = ["CocoResult", "evaluate_coco", "write_report"]
