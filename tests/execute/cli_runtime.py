"""A command-line runtime standing in for ``apr run`` in the engine's tests.

``--mode`` picks its behaviour: ``ok`` answers ``What is A + B?`` with the sum
(and anything else with a greeting), ``crash`` dies by SIGSEGV after a message
on stderr, ``hang`` starts a child and both sleep forever, ``garbage`` answers
with leaked template tokens and replacement characters. It reads the prompt
from ``--prompt-file`` (a chat request: the last user turn of ``--messages-file``)
and prints ``ANSWER: <text>`` after a line of log, as CLIs do.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


def answer(prompt: str) -> str:
    """The sum of ``A + B`` in the prompt, or a greeting."""
    found = re.search(r"(-?\d+)\s*\+\s*(-?\d+)", prompt)
    return str(int(found[1]) + int(found[2])) if found else "Hello there, friend."


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", required=True)
    parser.add_argument("--model")
    parser.add_argument("--prompt-file")
    parser.add_argument("--messages-file")
    parser.add_argument("--max-tokens", type=int)
    args = parser.parse_args()
    if args.mode == "sleep":
        time.sleep(3600)
        return 0
    if not Path(args.model).is_file():
        print(f"error: cannot open model {args.model}", file=sys.stderr)
        return 2
    prompt = Path(args.prompt_file).read_text("utf-8")
    if args.messages_file:
        turns = json.loads(Path(args.messages_file).read_text("utf-8"))
        prompt = [t["content"] for t in turns if t["role"] == "user"][-1]
    print(f"loaded {args.model} ({args.max_tokens} tokens at most)")
    if args.mode == "crash":
        print("panic: index out of bounds in apr_matmul", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
    if args.mode == "hang":
        subprocess.Popen([sys.executable, __file__, "--mode", "sleep"])
        time.sleep(3600)
    if args.mode == "garbage":
        print("ANSWER: token17 token17 <|im_end|> \ufffd\ufffd\ufffd")
        return 0
    print(f"ANSWER: {answer(prompt)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
