"""Reproduce the paper's main table: `python -m launch.reproduce`.

Trains and evaluates the rows of Menon et al.'s comparison (ICLR 2021,
"Long-tail learning via logit adjustment") on CIFAR-10-LT / CIFAR-100-LT and
writes RESULTS.md: balanced error (mean ± std over seeds), many / medium /
few-shot accuracy, the official release's published figures, and, read from
the runs, the budget, the data of each row, the machine, the library
versions, the wall times and per-class accuracy plots.

    TFDS_DATA_DIR=../shared/tfds python -m launch.reproduce \\
        --datasets=cifar10_lt --seeds=0 --budget=short \\
        --output_dir=/tmp/reproduce_short

Rows and the training runs they come from (one set per dataset and seed;
`spec.py` holds the mapping and each run's flags):

  ERM, weight normalisation (τ = 1),        `baseline`: `--mode=posthoc`
  logit adjustment post-hoc (τ = 1)         (cross-entropy), WN by
                                            `launch.evaluate --weight_norm_taus`
  weight normalisation (τ = τ*),            `holdout`: the same training with
  logit adjustment post-hoc (τ = τ*)        part of the training set held out
  adaptive margin (LDAM)                    `ldam`: `--loss=ldam`
  equalised loss                            `equalized`: `--loss=equalized`
  logit-adjusted loss                       `la_loss`: `--mode=loss`

Every run but `holdout` trains on the whole long-tailed training set
(`--holdout_fraction=0`), like the official release. τ* is chosen on the
holdout split of the `holdout` run (class stratified, same seed), never on
test. Every training is a `python -m launch.train` subprocess under
`<output_dir>/<dataset>/seed<k>/<run>`, with its log in `train.log` there: a
crash stays in its run, and rerunning the same command skips the runs that
wrote metrics.json and resumes the others from their checkpoints.
`--report_only` writes RESULTS.md from the run folders and trains nothing.

Budgets (`--budget`), whose flagfiles RESULTS.md reads:
  smoke  ResNet-8 (launch/configs/reproduce_smoke.cfg); for the synthetic
         `test` dataset and the tests.
  short  the official ResNet-32 and recipe on a compressed schedule, XLA
         (launch/configs/reproduce_short.cfg).
  full   the official schedules (launch/configs/cifar10_lt.cfg,
         cifar100_lt.cfg). Run it on a GPU or TPU, e.g.
         `--budget=full --seeds=0,1,2 --train_flag=--strategy=mirrored`
         (or `--train_flag=--strategy=tpu --train_flag=--tpu=NAME`).

`--train_flag=--epochs=12` (repeatable) appends flags to every training
(e.g. `--train_flag=--data_dir=DIR`; by default TFDS_DATA_DIR is used).

Modules: `spec` (what runs), `runner` (subprocesses), `facts` (what the run
folders say), `table` and `report` (RESULTS.md), `machine`, `cli` (flags).
"""

from launch.reproduce.cli import define_flags
from launch.reproduce.cli import main
from launch.reproduce.cli import run
from launch.reproduce.report import write_results
from launch.reproduce.runner import run_all
from launch.reproduce.runner import run_subprocess
from launch.reproduce.spec import BUDGETS
from launch.reproduce.spec import HOLDOUT_FRACTION
from launch.reproduce.spec import METHODS
from launch.reproduce.spec import OFFICIAL
from launch.reproduce.spec import PLOT_ROWS
from launch.reproduce.spec import ROWS
from launch.reproduce.spec import RUNS
from launch.reproduce.spec import budget_flags
from launch.reproduce.spec import train_args
from launch.reproduce.table import row_reports
from launch.reproduce.table import table
