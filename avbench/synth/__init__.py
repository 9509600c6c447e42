"""The embedded synthetic world and its trained evaluator."""
