"""Figures: one function per paper figure, each writing a PDF and the CSV it plots."""
