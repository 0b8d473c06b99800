"""Speed of the rule-based CheXpert labeler in reports per second on one core.

    .venv/bin/python benchmarks/labeler_speed.py [--csv indiana_reports.csv] [--repeats 5]

Labels every coded Open-I report (findings + impression, ~50 words each) ``--repeats`` times in this single process
and reports the best and median rates, by wall clock and by this process's CPU time (the second does not drop when
other programs share the core).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from deepmedix.labeler import label_reports
from deepmedix.labeler.agreement import load_openi_reports

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "open-i" / "indiana_reports.csv"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="Open-I indiana_reports.csv")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if not args.csv.is_file():
        print(f"{args.csv}: no such file (pass --csv)", file=sys.stderr)
        return 1
    texts = [r.text for r in load_openi_reports(args.csv)]
    words = sum(len(t.split()) for t in texts) / len(texts)
    pinned = hasattr(os, "sched_setaffinity")
    cores = os.sched_getaffinity(0) if pinned else set()
    if pinned:  # measure one core, whatever the machine has; restored afterwards
        os.sched_setaffinity(0, {min(cores)})
    try:
        rates, cpu_rates = [], []
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            label_reports(texts)
            rates.append(len(texts) / (time.perf_counter() - start))
            cpu_rates.append(len(texts) / max(time.process_time() - start_cpu, 1e-9))
    finally:
        if pinned:
            os.sched_setaffinity(0, cores)
    print(f"{len(texts)} reports, {words:.0f} words on average, {args.repeats} runs on one core")
    print(f"wall clock: best {max(rates):,.0f} reports/s, median {statistics.median(rates):,.0f} reports/s")
    print(f"CPU time:   best {max(cpu_rates):,.0f} reports/s, median {statistics.median(cpu_rates):,.0f} reports/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
