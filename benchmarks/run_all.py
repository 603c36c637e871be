"""Run every benchmark script in this folder, one after the other.

``make bench`` calls this.  Each script prints its own table (with the date,
machine, library versions and the load average at start); the machine is
shared, so check that nothing else is running and compare medians and ratios,
not single timings.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    scripts = ["accuracy_ml100k.py"] + sorted(p.name for p in HERE.glob("bench_*.py"))
    failed = []
    for name in scripts:
        print(f"\n===== {name} =====", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)], check=False).returncode:
            failed.append(name)
    if failed:
        sys.exit(f"benchmarks that failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
