// One dependency, one import: what an application needs to define jobs, run them under `FairwayService`
// and enqueue them with a producer.
@_exported import FairwayConfig
@_exported import FairwayJobs
@_exported import FairwayRuntime
@_exported import FairwayScheduling
@_exported import Logging
@_exported import ServiceLifecycle

@_exported import class FairwayAMQP.AMQPJobProducer
@_exported import struct FairwayAMQP.AMQPURL
@_exported import enum FairwayProcessWorkers.ProcessWorkerMain
@_exported import struct FairwaySQLite.DeadLetter
@_exported import struct FairwaySQLite.QueueFileStats
@_exported import struct FairwaySQLite.QueueFullError
@_exported import class FairwaySQLite.SQLiteJobProducer
@_exported import class FairwaySQLite.SQLiteQueue
