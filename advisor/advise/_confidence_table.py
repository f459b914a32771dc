"""The advice confidence's calibration table (advisor.advise.confidence): written by
``python -m benchmarks.advice_grid --calibrate-confidence`` from the grid's parts named in its
fitted_on. Do not edit by hand."""

TABLE = {'method': 'identity', 'loo': {'identity': 0.5378, 'platt': 0.5476, 'platt_decider': 0.5489, 'isotonic': 0.573}, 'identity_log_loss': 0.5378, 'n': 81, 'share_right': 0.7654, 'fitted_on': {'version': '1d28899bc36b,d2fba15e86da,0d1bbfd312af', 'parts': ['calibration', 'shift-held-out', 'sixth-held-out'], 'rows': 81, 'event': 'strategy regret <= 1 point'}}
