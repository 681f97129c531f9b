"""Research tooling that trains models (scikit-learn) on curated data.

Outside ``engine`` on purpose: scikit-learn imports ``rich`` (its progress bars), which the engine
never loads; the engine only ever reads a trained model's JSON (coefficients, scaler, reference).
"""
