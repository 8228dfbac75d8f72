"""`python -m launch.reproduce`: see `launch.reproduce`."""

from absl import app

from launch.reproduce.cli import define_flags
from launch.reproduce.cli import main

if __name__ == "__main__":
    define_flags()
    app.run(main)
