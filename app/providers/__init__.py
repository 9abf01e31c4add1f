"""Drivers for the components a department is made of; see base.py for the interface."""
