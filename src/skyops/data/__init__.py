"""Drone data: converters into one YOLO layout, validation, profiling, leak-free split, synthetic scenes."""
