"""`ExportSettings`: what an export is asked to do, each setting's default, help and range declared once, and the
timing protocol that the export's verification and `edgenas profile` share.

`export_model(...)` takes these settings as keyword arguments (its defaults are read from here) and checks them with
`ExportSettings.check`; `edgenas export` generates its options from the fields (`edgenas.cli.options`).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgenas.errors import EdgeNASError
from edgenas.runs.declared import check_ranges, option

# One timing pass: untimed calls, then timed calls. The export's verification times its files this way, and
# `edgenas profile` times each piece this way by default (ProfileSettings), so that what a table predicts and what an
# export measures are timed alike.
WARMUP, REPEATS = 10, 50


@dataclass(frozen=True)
class ExportSettings:
    """Every setting of an export (`export_model`'s keyword arguments), defaults included."""

    runtime: str | None = option(None, "Runtime to export to and verify on: onnxruntime, openvino or litert "
                                       "(default: by OUT's suffix: .onnx, .xml, .tflite).",
                                 one_of=("onnxruntime", "openvino", "litert"))
    precision: str = option("fp32", "What the runtime computes the FP32 file in: bf16 is asked of OpenVINO on CPUs "
                                    "with bf16 (it is then verified in bf16).", one_of=("fp32", "bf16"))
    opset: int = option(17, "ONNX opset.")
    table: str | None = option(None, "Latency table to compare the measured latency with.")
    threads: int = option(1, "Threads of the runtime and of PyTorch for the latency measurements.", at_least=1)
    atol: float = option(1e-4, "Largest absolute output difference accepted (a file run in bf16: 0.5 unless given, "
                               "and 99% top-1 agreement instead of 99.9%).")
    verify: bool = option(True, "Skip the verification on the runtime.", flag="--no-verify")
    int8: bool = option(False, "Also write the INT8 file OUT.int8.onnx (or .int8.xml, ...; static, per-channel).",
                        flag="--int8")
    max_drop: float = option(1.0, "Largest INT8 accuracy drop accepted, in points.", at_least=0,
                             unit="points of accuracy")
    allow_supernet_weights: bool = option(False, "Export a run that was not retrained, with the supernet's weights.",
                                          flag="--allow-supernet-weights")
    keep_failed: bool = option(False, "Keep the exported file when its verification fails (default: delete it, "
                                      "keep the report).", flag="--keep-failed")
    pt2: bool = option(False, "Also write OUT.pt2 (torch.export), which PyTorch loads with "
                              "torch.export.load(...).module(), without edgenas.", flag="--pt2")

    def check(self) -> None:
        """Refuse a value outside its declared range, or settings that contradict each other."""
        check_ranges(ExportSettings, vars(self))
        if self.int8 and not self.verify:
            raise EdgeNASError("--int8 needs the verification (its accuracy is checked against FP32): drop "
                               "--no-verify")
