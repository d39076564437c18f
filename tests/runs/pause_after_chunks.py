"""Run a Python program that writes chunks (`ChunkedRun.write_chunk`) and stop it for good once
it has written N of them: it prints "paused" and blocks reading its standard input. A test
kills it there, at a known point, instead of after a guessed time; on a busy machine and an
idle one it has then written exactly N chunks (closing its input lets it run on).

usage: python pause_after_chunks.py N PROGRAM [ARGS...]; or `kill_after_chunks` from a test.
"""

import runpy
import subprocess
import sys
from pathlib import Path

from mmcam.runs.chunks import ChunkedRun


def main() -> None:
    count, program, *arguments = sys.argv[1:]
    write_chunk = ChunkedRun.write_chunk
    written = []

    def write_then_pause(self, *args, **kwargs):
        write_chunk(self, *args, **kwargs)
        written.append(args[0])
        if len(written) == int(count):
            print("paused", flush=True)
            sys.stdin.read()  # until the test kills this process

    ChunkedRun.write_chunk = write_then_pause
    sys.argv = [program, *arguments]
    runpy.run_path(program, run_name="__main__")


def kill_after_chunks(count: int, program: list[str], env: dict | None = None) -> None:
    """Run the Python `program` (its path and arguments) until it has written `count` chunks,
    then SIGKILL it: the test waits on the program's word, never on a guessed time."""
    process = subprocess.Popen(
        [sys.executable, __file__, str(count), *program],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        for line in process.stdout:  # until it says it paused, or ends
            if line.strip() == "paused":
                break
        else:
            raise AssertionError(
                f"{Path(program[0]).name} ended (status {process.wait()}) before it had "
                f"written {count} chunks"
            )
    finally:
        process.kill()  # SIGKILL
        process.wait()
        process.stdin.close()
        process.stdout.close()


if __name__ == "__main__":
    main()
