"""admpo: the Any-step Dynamics Model and ADMPO-ON/OFF as a command-line tool."""

import os as _os
import sys as _sys

__version__ = "0.2.0"

# MKL's strict conditional numerical reproducibility: its matrix products give the same bits whatever the
# number of threads (without it a product with a long inner dimension and a short output, like a layer's
# weight gradient over a batch, splits its sums by thread count). With admpo's fixed-order column sums
# (kernels/cpu_kernels.cpp, models/head.py, models/normalizer.py) a run resumed with another thread count
# continues bit for bit. MKL reads MKL_CBWR when it starts; where torch was imported first, it is set directly
# (process.strict_cnr). A value the user exports wins.
_os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
if "torch" in _sys.modules:
    from .process import strict_cnr as _strict_cnr

    _strict_cnr()
