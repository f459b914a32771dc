"""The advice confidence's calibration table (advisor.advise.confidence): written by
``benchmarks/advice_grid.py --calibrate-confidence`` from the grid's calibration parts only. Do not edit by hand."""

TABLE = {'method': 'platt_decider', 'coef': [1.0558185794299555, -0.5259556890509207, 0.9087659114245976], 'intercept': -0.2968633054761416, 'loo': {'platt': 0.5582, 'platt_decider': 0.5238, 'isotonic': 0.8372}, 'identity_log_loss': 0.5206, 'n': 36, 'share_right': 0.7222, 'fitted_on': {'version': '8098388255bb,d2fba15e86da', 'parts': ['calibration', 'vit-calibration'], 'rows': 36, 'event': 'strategy regret <= 1 point'}}
