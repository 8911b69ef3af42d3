"""Pure energy and carbon KPI computation to the Chinese national standards. No I/O, no clock."""
