"""Regenerate docs/schema/sample.schema.json from the pydantic Sample model.

python scripts/make_schema.py          # write it
python scripts/make_schema.py --check  # exit 1 when the published schema is out of date
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from deepmedix.data.schema import json_schema
from deepmedix.io import atomic_write_text

TARGET = Path(__file__).resolve().parents[1] / "docs" / "schema" / "sample.schema.json"


def main(argv: list[str]) -> int:
    text = json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.is_file() else ""
        if current != text:
            print(f"{TARGET} is out of date; run python scripts/make_schema.py", file=sys.stderr)
            return 1
        return 0
    atomic_write_text(TARGET, text)
    print(TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
