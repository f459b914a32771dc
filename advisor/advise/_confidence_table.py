"""The advice confidence's calibration table (advisor.advise.confidence): written by
``python -m benchmarks.advice_grid --calibrate-confidence`` from the grid's calibration parts only. Do not edit by hand."""

TABLE = {'method': 'platt_decider', 'coef': [0.8542207507871782, -0.9111993128123903, 1.0020499473320899], 'intercept': -0.41195198505352504, 'loo': {'platt': 0.6956, 'platt_decider': 0.5539, 'isotonic': 0.9712}, 'identity_log_loss': 0.654, 'n': 21, 'share_right': 0.6667, 'fitted_on': {'version': '1d28899bc36b,d2fba15e86da', 'parts': ['calibration'], 'rows': 21, 'event': 'strategy regret <= 1 point'}}
