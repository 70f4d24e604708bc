"""The bundled hand detector: MediaPipe's Apache-2.0 palm-detection and hand-landmark networks in PyTorch."""

from handssca.detect.detector import HandDetection, HandDetector

__all__ = ["HandDetection", "HandDetector"]
