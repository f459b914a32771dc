"""The advice confidence's calibration table (advisor.advise.confidence): written by
``python -m benchmarks.advice_grid --calibrate-confidence`` from the grid's parts named in its
fitted_on. Do not edit by hand."""

TABLE = {'method': 'platt_decider', 'coef': [0.4764802909786791, -0.9260545830328005, 0.43316030275807066], 'intercept': 0.7742526443417402, 'loo': {'identity': 0.6187, 'platt': 0.6117, 'platt_decider': 0.5862, 'isotonic': 0.6338}, 'identity_log_loss': 0.6187, 'n': 59, 'share_right': 0.7288, 'fitted_on': {'version': '1d28899bc36b,d2fba15e86da', 'parts': ['calibration', 'shift-held-out'], 'rows': 59, 'event': 'strategy regret <= 1 point'}}
