"""Classical image codecs (JPEG, WebP, AVIF, JPEG XL) behind the interface of `imgcomp.codec.Codec`.

* `codec`   - `ClassicalCodec`: quality levels, the bitstream container, checked decoding
* `formats` - what each library is called with, and the level table
* `avif_header`, `jpeg_header`, `webp_header` - the size a file declares, read without decoding
  (JPEG XL's is `imgcomp.models.jxl_header`)
"""

from __future__ import annotations

from imgcomp.classical.codec import ClassicalCodec, classical_hash
from imgcomp.classical.formats import set_threads, threads

__all__ = ["ClassicalCodec", "classical_hash", "set_threads", "threads"]
