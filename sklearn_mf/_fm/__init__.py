"""Factorization machines: the estimators, the Gibbs sampler, the recommender.

``_estimators.py`` (FM regressor and classifier) over ``_fm_fast.pyx`` (SGD,
coordinate descent, prediction), ``_mcmc.py`` (the Bayesian FM's driver) over
``_mcmc_fast.pyx`` (blocked Gibbs sweeps), and ``_recommender.py``
(:class:`~sklearn_mf.FMRecommender`).
"""
