"""Tests of the evidence collectors."""
