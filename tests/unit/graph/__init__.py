"""Tests of the agent graph: state, builder, runner, routing and multi-step plans."""
