"""Process setup shared by the fixture scripts; every fixture module imports it first.

Importing it makes the Hugging Face libraries work offline and quietly: unless already set, it
sets TOKENIZERS_PARALLELISM=false, HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1 before
transformers is imported, then turns transformers' logging down to errors and hides its
progress bars. It defines nothing. `make_fixtures.py`, `make_gpt_oss_fixtures.py` and the
`fixture_*.py` / `gpt_oss_*.py` modules import it before tokenizers, torch or transformers.
"""

from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import transformers  # noqa: E402

transformers.logging.set_verbosity_error()
try:
    transformers.utils.logging.disable_progress_bar()
except Exception:  # pragma: no cover - older/newer API
    pass
