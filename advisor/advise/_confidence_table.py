"""The advice confidence's calibration table (advisor.advise.confidence): written by
``python -m benchmarks.advice_grid --calibrate-confidence`` from the grid's parts named in its
fitted_on. Do not edit by hand."""

TABLE = {'method': 'identity', 'loo': {'identity': 0.5121, 'platt': 0.5238, 'platt_decider': 0.5248, 'isotonic': 0.5273}, 'identity_log_loss': 0.5121, 'n': 127, 'share_right': 0.7717, 'fitted_on': {'version': '1d28899bc36b,d2fba15e86da,0d1bbfd312af,7be766bc9cfb,2d1b84afe781', 'parts': ['calibration', 'eighth-held-out', 'seventh-held-out', 'shift-held-out', 'sixth-held-out'], 'rows': 127, 'event': 'strategy regret <= 1 point'}}
