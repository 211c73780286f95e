"""Simulated contact-centre traffic with labelled abuse, and scoring detectors against it.

``simulate`` makes a seeded, reproducible world (tenants of several countries and sizes, their
diurnal traffic and holidays), injects abuse of every detector's kind and benign look-alikes,
and labels them; ``evaluate`` runs detectors over the records and scores their findings against
the labels. docs/evaluation.md describes both. Pure core: no I/O.
"""
