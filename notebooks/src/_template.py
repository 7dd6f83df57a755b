# %% [markdown] slideshow={"slide_type": "slide"}
# # NN · Chapter title (中文术语)
#
# Copy this file to `notebooks/src/NN_topic.py`, write the chapter, then run
# `python3 course.py regen NN`. Prose first, then the code that says the same thing; every number
# the prose states is computed in a cell above it or quoted with its source.

# %% slideshow={"slide_type": "skip"}
%config InlineBackend.figure_formats = ['png']
import numpy as np
import matplotlib.pyplot as plt
import tinyattn as ta
from tinyattn.viz import setup_notebook

setup_notebook()                      # small PNG figures, one fixed style
rng = np.random.default_rng(0)        # the only source of randomness in the notebook

# %% slideshow={"slide_type": "-"}
# NBVAL_CHECK_OUTPUT
# Cells whose printed results CI must reproduce start with the line above and print rounded,
# deterministic text only (no timings, no addresses).
print(f"{np.float64(1 / 3):.4f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Claims ledger
# | source text says (section) | what we measured | verdict |
# |---|---|---|
# | ... | cell above | reproduced / corrected / unsourced |
