"""absl entry points: `python -m launch.train | evaluate | export | quickstart`."""
