"""klupa: firmware and edge stack for the LINK 4 Cooperation solar smart benches."""

__version__ = "0.1.0"
