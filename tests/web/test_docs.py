"""Every Python block in docs/web-relay.md runs, offline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "web-relay.md"


def test_doc_blocks_run(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)
    assert blocks and all(lang == "python" for lang, _ in blocks), [b[0] for b in blocks]
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    outputs = []
    for i, (_, code) in enumerate(blocks):
        script = tmp_path / f"block{i}.py"
        script.write_text(code, encoding="utf-8")
        r = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=45,
            env=env,
            cwd=tmp_path,
            check=False,
        )
        assert r.returncode == 0, r.stderr
        outputs.append(r.stdout)
    assert outputs[0].strip() == "You said: hello"
