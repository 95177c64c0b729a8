"""The write path's sagas against fake actors, one file per saga, plus the dispatcher and
the saga engine they all run on."""
