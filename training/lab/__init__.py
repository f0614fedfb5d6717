"""The convergence lab: does GAN training converge?

* ``training.lab.dirac``: the Dirac-GAN of Mescheder, Geiger, Nowozin 2018, "Which Training
  Methods for GANs do actually Converge?" (sec. 2), under simultaneous and alternating gradient
  descent with the zoo's losses and penalties.
* ``training.lab.rings``: eight Gaussians on a ring, the mode-collapse benchmark of Metz et al.
  2016, "Unrolled Generative Adversarial Networks", trained with ``zoo.base.AdversarialModel``.
* ``python -m training.lab {dirac,rings}``: the command line (``training/lab/__main__.py``),
  which writes ``docs/convergence.md``.
"""
