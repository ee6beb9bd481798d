import json
import subprocess
import sys


def test_device_command_prints_one_json_object():
    out = subprocess.run(
        [sys.executable, "-m", "neuro_rm.cli", "device", "--json", "--seed", "3"], capture_output=True, text=True, check=True
    ).stdout
    report = json.loads(out)
    for key in ("cells", "levels", "tolerance_us", "within_tolerance_fraction", "mean_pulses", "max_pulses", "write_energy_j"):
        assert key in report
    assert report["cells"] == 128 * 128
    assert report["within_tolerance_fraction"] >= 0.99
    assert report["mean_pulses"] > 1
    assert 0 < report["max_pulses"] <= report["pulse_limit"]


def test_device_command_rejects_impossible_options():
    proc = subprocess.run(
        [sys.executable, "-m", "neuro_rm.cli", "device", "--levels", "0"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "levels" in proc.stderr and "Traceback" not in proc.stderr
