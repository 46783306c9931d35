"""What the decoder and multi-task cores both do with an incoming payload: parse it strictly
(once per frame: the parsed `Frame` goes on to the codec), check the message fields against its
header, and classify a codec failure."""

from __future__ import annotations

from imgcomp.bitstream import BitstreamError, Frame, ModelMismatchError, TooLargeError, check_output_size, unpack
from imgcomp.stream.fields import FeaturesFields, header_disagreement
from imgcomp.stream.rejections import DECODE_FAILED, MALFORMED_PAYLOAD, MODEL_MISMATCH, TOO_LARGE, Rejection

__all__ = ["checked_frame", "codec_failure"]


def checked_frame(fields: FeaturesFields, max_output_pixels: int) -> Frame | Rejection:
    """The parsed payload, or a (not yet counted) `malformed_payload` or `too_large` rejection
    (checked from the header, before any codec allocates anything)."""
    try:
        frame = unpack(fields.data)
        header = frame.header
        check_output_size(header.height, header.width, max_output_pixels)
    except TooLargeError as exc:
        return Rejection(TOO_LARGE, str(exc))
    except BitstreamError as exc:
        return Rejection(MALFORMED_PAYLOAD, str(exc))
    except (TypeError, ValueError) as exc:
        return Rejection(MALFORMED_PAYLOAD, f"payload is not bytes: {exc}")
    disagreement = header_disagreement(fields, header)
    return Rejection(MALFORMED_PAYLOAD, disagreement) if disagreement else frame


def codec_failure(exc: Exception) -> Rejection:
    """The rejection for an exception raised while a codec read a payload that parsed."""
    if isinstance(exc, TooLargeError):
        return Rejection(TOO_LARGE, str(exc))
    if isinstance(exc, ModelMismatchError):
        return Rejection(MODEL_MISMATCH, str(exc))
    if isinstance(exc, BitstreamError):
        return Rejection(MALFORMED_PAYLOAD, str(exc))
    return Rejection(DECODE_FAILED, f"{type(exc).__name__}: {exc}")
