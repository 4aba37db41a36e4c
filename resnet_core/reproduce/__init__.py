"""The reproduction of Shamir (2018), built on the core and used by ``resnet-core demo``.

- :mod:`.paper`: the paper's examples and claims, recomputed (plain data);
- :mod:`.datasets`: the real data sets (scikit-learn's, standardised);
- :mod:`.plots`: the figures (matplotlib);
- :mod:`.report`: each claim's verdict and ``report.md``;
- :mod:`.demo`: the driver, :func:`.demo.run_demo`.

The optional dependencies (scikit-learn, matplotlib, tqdm) come with
``pip install resnet-core[demo]``; the core never imports this package.
"""
