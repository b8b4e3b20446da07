"""augframe_diffecg: DiffECG (arXiv 2306.01875), one conditional diffusion model for ECG generation,
imputation and forecasting, selected by the mask of known samples alone."""
