"""`loopline demo`: the library at work on a forecasting problem, from stream to figure.

Not part of loopline's API. One module per step: `lorenz` and `series` make the data,
`tasks` turns it into a training stream and held-out trajectories, `train` fits a
forecaster three ways over `forever`, `baselines` gives the forecasts to beat, `report`
rolls out and scores, `figure` draws, `checkpoint` saves and resumes, and `run` ties
them together for `loopline.cli`.
"""
